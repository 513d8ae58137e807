"""The engines that run stages: the live pipeline, its capture stage, and the file converter."""
