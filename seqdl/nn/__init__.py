"""Layers with PyTorch's names, arguments, parameter names, shapes and initialisation."""
from . import functional, init
from .conv import AvgPool1d, AvgPool2d, Conv1d, Conv2d, MaxPool1d, MaxPool2d
from .layers import (
    GELU, BatchNorm1d, BatchNorm2d, Dropout, Embedding, Flatten, Identity, LayerNorm, Linear, ReLU, Sigmoid, Tanh,
)
from .module import Module, ModuleList, Parameter, Sequential
from .recurrent import GRU, LSTM

__all__ = [
    "functional", "init", "Module", "ModuleList", "Parameter", "Sequential",
    "Linear", "Embedding", "Dropout", "LayerNorm", "BatchNorm1d", "BatchNorm2d",
    "ReLU", "GELU", "Tanh", "Sigmoid", "Identity", "Flatten",
    "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "GRU", "LSTM",
]
