"""vqrepro: a reproduction pipeline for research on codebook collapse in vector quantization."""

__version__ = "0.1.0"
