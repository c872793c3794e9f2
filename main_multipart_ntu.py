"""Train or test GAP on NTU RGB+D 60/120 (the paper README's commands); the trainer is torchlight's."""
import sys

from torchlight.cli import main

if __name__ == '__main__':
    sys.exit(main(feeder='feeders.feeder_ntu.Feeder', default_config='./config/nturgbd-cross-subject/lst_joint.yaml',
                  criterion_args={'text_dir': 'ntu', 'loss_alpha': 0.8},  # upstream's NTU script's
                  description=__doc__))
