"""SeqGAN: sequence generative adversarial nets trained with policy gradient (Yu et al., AAAI-17)."""

__version__ = "0.1.0"
