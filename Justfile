# Developer shortcuts (https://github.com/casey/just); each is one plain command you can also type.
set shell := ["bash", "-uc"]

setup:
    bash scripts/setup.sh all,test

test *ARGS:
    bash scripts/test.sh {{ARGS}}

lint:
    .venv/bin/ruff check src tests benchmarks
    .venv/bin/mypy

fix:
    .venv/bin/ruff check --fix src tests benchmarks

demo:
    bash scripts/demo.sh

build:
    .venv/bin/python -m build
