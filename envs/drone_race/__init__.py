"""simenvs/DroneRace-v0: gate racing (env.py), tracks, gates and the gate texture set."""
