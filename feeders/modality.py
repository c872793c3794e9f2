"""The input modality of a feeder: one name, one table of what it switches on.

`modality=` is the clear option. Upstream configs say the same thing in two older ways, which keep
working as aliases: the NTU feeder's `bone` / `vel` booleans, and the NW-UCLA feeder's `data_path`
('joint', 'bone', 'joint_motion', 'bone_motion'; upstream switched on the substrings 'bone' and
'motion' of that string). When several are given they must agree.
"""
from torchlight.errors import UserError

# name -> (bone, motion)
MODALITIES = {
    'joint': (False, False),
    'bone': (True, False),
    'joint_motion': (False, True),
    'bone_motion': (True, True),
}
# NTU config names say "vel" for motion.
ALIASES = {'joint_vel': 'joint_motion', 'bone_vel': 'bone_motion'}


def canonical(name, what='modality'):
    """The table's name for `name` (aliases resolved); UserError for anything else."""
    key = ALIASES.get(name, name)
    if key not in MODALITIES:
        choices = ', '.join(list(MODALITIES) + list(ALIASES))
        raise UserError(f'unknown {what} {name!r}; expected one of: {choices}')
    return key


def flags(name):
    """(bone, motion) for a modality name."""
    return MODALITIES[canonical(name)]


def from_flags(bone, motion):
    return next(n for n, f in MODALITIES.items() if f == (bool(bone), bool(motion)))


def resolve(modality=None, *, bone=False, vel=False, data_path=None):
    """The one modality name a feeder's arguments ask for.

    modality: None or a name. bone / vel: upstream NTU booleans (False counts as unset).
    data_path: an upstream NW-UCLA data_path, or None where data_path is a file (NTU).
    """
    asked = []
    if modality is not None:
        asked.append(('modality', canonical(modality)))
    if data_path is not None:
        asked.append(('data_path', canonical(data_path, what='NW-UCLA data_path')))
    if bone or vel:
        asked.append(('bone/vel', from_flags(bone, vel)))
    names = {name for _, name in asked}
    if len(names) > 1:
        said = ', '.join(f'{key} -> {name}' for key, name in asked)
        raise UserError(f'conflicting modality settings ({said}); give just one (modality: ...)')
    return names.pop() if names else 'joint'
