"""Per-backend details that ``keras.ops`` cannot express (DESIGN §4): kept small and in one place."""
