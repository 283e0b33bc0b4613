"""Reusable Pixyz distributions: encoders, decoders, priors, experts, and their networks."""

from pixyz_zoo.distributions.decoders import (
    BernoulliDecoder,
    CategoricalDecoder,
    GaussianDecoder,
    LaplaceDecoder,
    decoder_for,
    decoder_output_channels,
)
from pixyz_zoo.distributions.deterministic import DeterministicEncoder, FactorDecoderNet, factor_feature_net
from pixyz_zoo.distributions.encoders import GaussianEncoder
from pixyz_zoo.distributions.experts import MixtureOfExperts, ProductOfGaussianExperts
from pixyz_zoo.distributions.iterative_sampling import IterativeSampling
from pixyz_zoo.distributions.networks import (
    MLP,
    ConvDecoderNet,
    ConvEncoderNet,
    MultiInputNet,
    decoder_network,
    encoder_network,
)
from pixyz_zoo.distributions.priors import standard_normal
from pixyz_zoo.distributions.refinement import (
    GaussianFromParameters,
    GradientStep,
    LearnedUpdate,
    RefinedGaussian,
    UpdateRule,
)
from pixyz_zoo.distributions.sequence_networks import SequenceDecoderNet, SequenceEncoderNet, sequence_length

__all__ = [
    "MLP",
    "BernoulliDecoder",
    "CategoricalDecoder",
    "ConvDecoderNet",
    "ConvEncoderNet",
    "DeterministicEncoder",
    "FactorDecoderNet",
    "GaussianDecoder",
    "GaussianEncoder",
    "GaussianFromParameters",
    "GradientStep",
    "IterativeSampling",
    "LaplaceDecoder",
    "LearnedUpdate",
    "MixtureOfExperts",
    "MultiInputNet",
    "ProductOfGaussianExperts",
    "RefinedGaussian",
    "SequenceDecoderNet",
    "SequenceEncoderNet",
    "UpdateRule",
    "decoder_for",
    "decoder_network",
    "decoder_output_channels",
    "encoder_network",
    "factor_feature_net",
    "sequence_length",
    "standard_normal",
]
