"""Action names of a dataset's classes, for pictures and reports (text/<set>/label_names.txt)."""
from pathlib import Path

TEXT_DIR = Path(__file__).resolve().parents[1] / 'text'


def class_names(text_set, num_class):
    """The first `num_class` label names of `text_set` ('ntu' or 'ucla'); numbers if unreadable."""
    try:
        names = (TEXT_DIR / text_set / 'label_names.txt').read_text(encoding='utf-8').splitlines()
    except OSError:
        names = []
    names = [n.strip() for n in names if n.strip()]
    return names[:num_class] if len(names) >= num_class else [str(i) for i in range(num_class)]
