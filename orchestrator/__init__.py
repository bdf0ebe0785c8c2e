"""Config and content ids, the trainer loop, checkpoints, evaluation, tracking, backends, CLI."""
