"""Development: a throwaway secret, DEBUG on, SMS codes printed to the console."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
SERVER_TIMING = env.bool("SERVER_TIMING", default=DEBUG)
SECRET_KEY = env("SECRET_KEY", default="dev-only-not-secret-8c1f3e0d6a2b4f7e9d5c")
