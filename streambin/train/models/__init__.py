"""PyTorch models of streambin: ResNet-18 trunk, Mono2Binaural U-Net, APNet, and the generator."""

from streambin.train.models.apnet import APNet, AssociativeConv
from streambin.train.models.generator import BinauralGenerator, build_generator
from streambin.train.models.resnet import ResNet18Trunk, load_imagenet_weights, trunk_output_hw
from streambin.train.models.unet import AudioUNet

__all__ = ["APNet", "AssociativeConv", "AudioUNet", "BinauralGenerator", "ResNet18Trunk",
           "build_generator", "load_imagenet_weights", "trunk_output_hw"]
