"""Train or test GAP on NW-UCLA (the paper README's commands); the trainer is torchlight's."""
import sys

from torchlight.cli import main

if __name__ == '__main__':
    sys.exit(main(feeder='feeders.feeder_ucla.Feeder', default_config='./config/ucla/lst_joint.yaml',
                  description=__doc__))
