#!/usr/bin/env bash
# Restore data/, runs/ and Snakemake's job records from the DVC remote into this clone,
# so that the next `snakemake` (or `dvc repro`) re-runs nothing that was pushed.
#
# DVC does not keep file times: restored files get the time of the pull, in whatever
# order DVC wrote them, and Snakemake would re-run any job whose output came out older
# than its input. Once DVC confirms that the restored outputs belong to this commit's
# params.yaml and workflow, `snakemake --touch` gives them times in the DAG's order.
set -euo pipefail
cd "$(dirname "$0")/.."

# The workflow's outputs (dvc.yaml's stage) must all come back, or the restore is pointless.
if ! dvc pull reproduce; then
    echo "restore_from_remote.sh: could not pull the outputs that dvc.lock records for this commit (see above)." \
         "Check that a DVC remote is configured ('dvc remote list') and that the clone which ran the" \
         "workflow pushed them ('dvc repro && dvc push' there, then commit dvc.lock)." >&2
    exit 1
fi

# Files tracked by their own .dvc file (the HTML report) are extras that no workflow run
# pushes; one the remote lacks is named and skipped rather than failing the restore.
while IFS= read -r -d '' tracking_file; do
    if ! pull_output=$(dvc pull "$tracking_file" 2>&1); then
        echo "restore_from_remote.sh: warning: ${tracking_file%.dvc} (tracked by $tracking_file) is not in" \
             "the DVC remote, so it was not restored; push it from a clone that has it" \
             "('dvc push $tracking_file') or rebuild it. DVC said:" >&2
        sed -n '/^ERROR/,$s/^/    /p' <<<"$pull_output" >&2
    fi
done < <(git ls-files -z -- '*.dvc')

if ! dvc status reproduce | grep -q "up to date"; then
    dvc status reproduce >&2
    echo "restore_from_remote.sh: the restored outputs do not match params.yaml or the workflow of this" \
         "checkout (see above), so their times were left alone; run 'dvc repro' to bring them up to date." >&2
    exit 1
fi
snakemake --cores 1 --touch --max-checksum-file-size 0 all --quiet  # by times alone; the target before --quiet, which takes values
snakemake --dry-run all --quiet
