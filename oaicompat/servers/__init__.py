"""Real local OpenAI-compatible servers for the suite: install, start, wait for and stop them.

See ``oaicompat servers --help``; code in ``paths``, ``model``, ``specs``, ``manager``, ``cli``.
"""
