from setuptools import find_packages, setup

setup(
    name='torchlight',
    version='1.0.0',
    description='Generic training-script pieces: arguments, class import, logging, checkpoint I/O',
    packages=find_packages(),
    python_requires='>=3.9',
)
