"""Our VQ and EMA quantizers against an independent implementation (vector-quantize-pytorch).

Both sides get the same codebook and the same random tokens. vector-quantize-pytorch's
``VectorQuantize`` is configured as plain Euclidean nearest-code quantization: no cosine
similarity, no k-means init (so its ``initted`` buffer is already True), no codebook-dim
projection, one head, no dead-code replacement, no stochastic sampling, and the plain
straight-through estimator (its default for dim > 1 is the rotation trick, switched off here).

Differences found, and how each test accounts for them:

1. Initial EMA state. Both start with counts 1 and sums equal to the codes (a consistent
   state: each code the mean of one pseudo-token equal to itself). The test also runs from
   counts 0 (``initial_count: 0``, taming-transformers' state), copied into both sides.
2. Which codes z_q uses in training mode: both look the codes up before the EMA update (as
   Sonnet does). The test compares the codebook trajectories in training mode and z_q in
   evaluation mode, where neither side updates.
3. Arithmetic order only: they update by ``lerp_`` (old + (1 - decay) (new - old)), we by
   decay * old + (1 - decay) * new; they sum tokens per code with one einsum, we in chunks;
   they take argmax of -sqrt(clamp(|x|^2 + |c|^2 - 2 x.c)), we argmin of |c|^2 - 2 x.c.
   These differ by float rounding, hence the tolerances below and the near-tie allowance
   for indices (a mismatch is accepted only if the two codes are equally far in float64 up
   to 1e-5 relative, and such mismatches must be rare).
"""
import pytest
import torch

from vqrepro.quantizers import build_quantizer

vqp = pytest.importorskip("vector_quantize_pytorch")

ATOL, RTOL = 1e-5, 1e-4


def reference(k: int, d: int, *, ema: bool, decay: float = 0.99, commitment_weight: float = 1.0):
    """vector-quantize-pytorch configured as plain Euclidean VQ (learnable codes) or EMA VQ."""
    return vqp.VectorQuantize(
        dim=d,
        codebook_size=k,
        codebook_dim=None,  # no projection in or out
        heads=1,
        decay=decay,
        eps=1e-5,  # equals our EMASettings.epsilon default
        kmeans_init=False,
        use_cosine_sim=False,
        threshold_ema_dead_code=0,
        commitment_weight=commitment_weight,
        orthogonal_reg_weight=0.0,
        codebook_diversity_loss_weight=0.0,
        stochastic_sample_codes=False,
        straight_through=False,  # (their Gumbel straight-through)
        rotation_trick=False,
        directional_reparam=False,
        sync_codebook=False,
        affine_param=False,
        ema_update=ema,
        learnable_codebook=not ema,
    )


def set_reference_state(ref, codebook, cluster_size, embed_sum):
    cb = ref._codebook
    with torch.no_grad():
        cb.embed.copy_(codebook[None])
        cb.embed_avg.copy_(embed_sum[None])
        cb.cluster_size.copy_(cluster_size[None])
    assert bool(cb.initted)


def assert_same_indices(ours, theirs, z, codebook):
    """Indices equal except at float near-ties (which random floats make rare)."""
    ours, theirs = ours.reshape(-1), theirs.reshape(-1)
    differ = (ours != theirs).nonzero().flatten()
    assert differ.numel() <= max(1, ours.numel() // 1000), f"{differ.numel()} of {ours.numel()} indices differ"
    z64, c64 = z.reshape(-1, z.shape[-1]).double(), codebook.double()
    for i in differ.tolist():
        a = (z64[i] - c64[ours[i]]).pow(2).sum()
        b = (z64[i] - c64[theirs[i]]).pow(2).sum()
        assert abs(a - b) <= 1e-5 * max(a, b), f"token {i}: not a near-tie ({a.item()} vs {b.item()})"


@pytest.mark.parametrize("k", [16, 512])
@pytest.mark.parametrize("d", [8, 64])
@pytest.mark.parametrize("shape", [(4096,), (8, 16, 16), (3, 333)])
def test_plain_vq_matches_reference(k, d, shape):
    torch.manual_seed(1000 * k + d + len(shape))
    ours = build_quantizer({"method": "vq"}, k, d)  # commit 0.25 on z, codebook 1.0 on the codes
    theirs = reference(k, d, ema=False, commitment_weight=1.0)  # one loss, gradient to both sides
    codebook = torch.randn(k, d)
    with torch.no_grad():
        ours.codebook.copy_(codebook)
    set_reference_state(theirs, codebook, torch.ones(k), codebook.clone())
    z = torch.randn(*shape, d)
    upstream = torch.randn_like(z)

    for training in (False, True):
        ours.train(training)
        theirs.train(training)
        z_ours = z.clone().requires_grad_(True)
        z_theirs = z.clone().reshape(1, -1, d).requires_grad_(True)
        out = ours(z_ours)
        q, idx, loss = theirs(z_theirs)
        assert out.indices.shape == shape
        assert_same_indices(out.indices, idx, z, codebook)
        same = out.indices.reshape(-1) == idx.reshape(-1)
        # z + (z_q - z) in both, or the bare code in their evaluation mode: equal up to rounding.
        torch.testing.assert_close(out.z_q.reshape(-1, d)[same], q.reshape(-1, d)[same], rtol=1e-6, atol=1e-6)
        if not training:
            continue
        # Their loss is mse(z, z_q) with gradient to both z and the codes; ours splits it.
        torch.testing.assert_close(out.losses["codebook"], loss, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(4 * out.losses["commit"], loss, rtol=1e-5, atol=1e-7)
        # Straight-through: the upstream gradient reaches z unchanged on both sides.
        (g_ours,) = torch.autograd.grad((out.z_q * upstream).sum(), z_ours, retain_graph=True)
        (g_theirs,) = torch.autograd.grad((q * upstream.reshape(1, -1, d)).sum(), z_theirs, retain_graph=True)
        torch.testing.assert_close(g_ours, upstream, rtol=0, atol=0)
        torch.testing.assert_close(g_theirs.reshape(upstream.shape), upstream, rtol=0, atol=0)
        # Losses: ours sends 0.25 * grad mse to z and 1 * grad mse to the codes; theirs 1 and 1.
        g_z_ours, g_c_ours = torch.autograd.grad(sum(out.losses.values()), (z_ours, ours.codebook))
        g_z_theirs, g_c_theirs = torch.autograd.grad(loss, (z_theirs, theirs._codebook.embed))
        torch.testing.assert_close(g_c_ours, g_c_theirs[0], rtol=1e-4, atol=1e-9)
        torch.testing.assert_close(g_z_ours.reshape(-1, d), 0.25 * g_z_theirs.reshape(-1, d), rtol=1e-4, atol=1e-11)


@pytest.mark.parametrize("initial_state", ["default", "counts_zero"])
@pytest.mark.parametrize("k, d, decay", [(64, 8, 0.99), (512, 64, 0.8)])
def test_ema_update_matches_reference(initial_state, k, d, decay):
    torch.manual_seed(k + d)
    ours = build_quantizer({"method": "ema", "decay": decay}, k, d)
    theirs = reference(k, d, ema=True, decay=decay, commitment_weight=0.25)
    codebook = torch.randn(k, d)
    # Both default states have counts 1; counts 0 is taming-transformers' (initial_count: 0).
    counts = torch.zeros(k) if initial_state == "counts_zero" else torch.ones(k)
    ours.codebook.copy_(codebook)
    ours.embed_sum.copy_(codebook)
    ours.cluster_size.copy_(counts)
    set_reference_state(theirs, codebook, counts, codebook.clone())
    ours.train()
    theirs.train()

    for step in range(5):
        # Tokens drawn near a random subset of codes, so some codes are used and some not.
        centres = codebook[torch.randint(0, k, (k // 4,))]
        z = centres[torch.randint(0, k // 4, (2048,))] + 0.3 * torch.randn(2048, d)
        before = ours.codebook.clone()
        out = ours(z)
        _, idx, _ = theirs(z[None])
        assert_same_indices(out.indices, idx, z, before)
        torch.testing.assert_close(ours.cluster_size, theirs._codebook.cluster_size[0], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(ours.embed_sum, theirs._codebook.embed_avg[0], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(ours.codebook, theirs._codebook.embed[0], atol=ATOL, rtol=RTOL, msg=f"step {step}")

    # Evaluation mode: no update on either side, same indices and same z_q.
    ours.eval()
    theirs.eval()
    z = torch.randn(3, 100, d)
    before = ours.codebook.clone()
    out = ours(z)
    q, idx, _ = theirs(z)
    assert_same_indices(out.indices, idx, z, before)
    same = out.indices == idx
    torch.testing.assert_close(out.z_q[same], q[same], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ours.codebook, before, rtol=0, atol=0)

