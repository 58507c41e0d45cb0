"""Importing this registers ``tdrl-test/MatchSign-v0`` (for ``--env-module`` / ``env_module=``)."""
import gymnasium as gym

if "tdrl-test/MatchSign-v0" not in gym.registry:
    gym.register("tdrl-test/MatchSign-v0", entry_point="user_envs:MatchSignEnv")
