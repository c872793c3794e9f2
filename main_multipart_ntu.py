"""Train or test GAP on NTU RGB+D 60/120 (the paper README's commands); the trainer is torchlight's."""
import sys

from torchlight.cli import main

DEFAULTS = {
    'config': './config/nturgbd-cross-subject/lst_joint.yaml',
    'feeder': 'feeders.feeder_ntu.Feeder',
    'loss_alpha': 0.8,
}


def text_supervision(**kwargs):
    """NTU's descriptions (ntu covers NTU60 and NTU120: the first num_class of the 120 classes)."""
    from text.supervision import TextSupervision
    return TextSupervision.build('ntu', **kwargs)


if __name__ == '__main__':
    sys.exit(main(defaults=DEFAULTS, text_supervision=text_supervision, score_keys='name',
                  description=__doc__))
