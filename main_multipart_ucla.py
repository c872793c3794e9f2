"""Train or test GAP on NW-UCLA (the paper README's commands); the trainer is torchlight's."""
import sys

from torchlight.cli import main

DEFAULTS = {
    'config': './config/ucla/lst_joint.yaml',
    'feeder': 'feeders.feeder_ucla.Feeder',
    'loss_alpha': 1.0,
}


def text_supervision(**kwargs):
    from text.supervision import TextSupervision
    return TextSupervision.build('ucla', **kwargs)


if __name__ == '__main__':
    # upstream keys NW-UCLA score pickles by sample position, not by name
    sys.exit(main(defaults=DEFAULTS, text_supervision=text_supervision, score_keys='index',
                  description=__doc__))
