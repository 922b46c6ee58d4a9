"""Network definitions of streambin, shared by training and the runtime's torch backend: ResNet-18
trunk, Mono2Binaural U-Net, APNet, the generator, and the checkpoint reader for inference.

Needs torch only (never ``streambin.train``): ``streambin.nets.weights.load_generator_weights``
loads a checkpoint's or a bundle's ``weights.pt`` generator without the training package.
"""

from streambin.nets.apnet import APNet, AssociativeConv
from streambin.nets.generator import (RECIPE_VISUAL_NETS, BinauralGenerator, default_visual_net,
                                      generator_kwargs_from_model)
from streambin.nets.resnet import ResNet18Trunk, load_imagenet_weights, trunk_output_hw
from streambin.nets.unet import AudioUNet
from streambin.nets.weights import CheckpointError, load_generator_weights

__all__ = ["APNet", "AssociativeConv", "AudioUNet", "BinauralGenerator", "CheckpointError", "RECIPE_VISUAL_NETS",
           "ResNet18Trunk", "default_visual_net", "generator_kwargs_from_model", "load_generator_weights",
           "load_imagenet_weights", "trunk_output_hw"]
