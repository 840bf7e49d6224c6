"""The training wing: fine-tuning (the FT setting), pretraining the reference decoder, overlap checks."""
