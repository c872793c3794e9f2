"""NTU RGB+D preparation (raw `.skeleton` files -> upstream-format npz) and the synthetic demo set."""
