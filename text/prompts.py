"""The five text sets per class that supervise the skeleton features.

  set 0 global: the class's synonyms, label name included; one is drawn per sample per step
  set 1 head:   `name, head ...`
  set 2 hand:   `name, hand ..., arm ...`
  set 3 hip:    `name, hip ...`
  set 4 foot:   `name, leg ..., foot ...`

Upstream glues the name straight onto the hand field (`name` + `hand ...`, no comma), which fuses
the last word of the name with the part word ("drink waterhand ..."); we put the comma there like
in the other sets. Upstream joins with a bare ',' and we with ', ': both CLIP's and BERT's
tokenizers drop the space, so the tokens are the same.
"""
from dataclasses import dataclass

from graph.parts import BODY_PARTS

SET_NAMES = ('global', *BODY_PARTS)  # set s supervises the model's text feature s
# Which description fields (text.descriptions.PART_WORDS order) each part set joins to the name.
PART_SET_FIELDS = {'head': ('head',), 'hand': ('hand', 'arm'), 'hip': ('hip',), 'foot': ('leg', 'foot')}
_FIELD_INDEX = {'head': 0, 'hand': 1, 'arm': 2, 'hip': 3, 'leg': 4, 'foot': 5}


@dataclass(frozen=True)
class PromptBank:
    """global_texts[c] = synonyms of class c; part_texts[s][c] = prompt of part set s+1 for class c."""
    global_texts: list
    part_texts: list

    @property
    def num_class(self):
        return len(self.global_texts)

    def all_texts(self):
        """Every prompt once, in a fixed order: global sets class by class, then the four part sets."""
        texts = [t for synonyms in self.global_texts for t in synonyms]
        return texts + [t for part in self.part_texts for t in part]


def part_prompt(name, fields, part_set):
    """Prompt of one part set for one class from its six part fields."""
    return ', '.join([name] + [fields[_FIELD_INDEX[f]] for f in PART_SET_FIELDS[part_set]])


def build_prompts(descriptions):
    """PromptBank from a text.descriptions.Descriptions."""
    global_texts = [list(synonyms) for synonyms in descriptions.synonyms]
    part_texts = [[part_prompt(name, fields, part_set)
                   for name, fields in zip(descriptions.part_names or descriptions.names, descriptions.parts)]
                  for part_set in SET_NAMES[1:]]
    return PromptBank(global_texts=global_texts, part_texts=part_texts)
