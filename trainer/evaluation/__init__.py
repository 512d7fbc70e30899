"""Evaluation of a base model and its adapters: perplexity on eval sets, lm-evaluation-harness
tasks and HumanEval (generated code runs in :mod:`trainer.evaluation.sandbox`), each written as
one report."""
