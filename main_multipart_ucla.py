"""Train or test GAP on NW-UCLA (the paper README's commands); the trainer is torchlight's."""
import sys

from torchlight.cli import main

if __name__ == '__main__':
    sys.exit(main(feeder='feeders.feeder_ucla.Feeder', default_config='./config/ucla/lst_joint.yaml',
                  criterion_args={'text_dir': 'ucla', 'loss_alpha': 1.0},  # upstream's NW-UCLA script's
                  description=__doc__))
