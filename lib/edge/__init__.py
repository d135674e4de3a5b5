"""The HTTP edge: requests in, AIP-193 JSON out.

Routes (AIP-127 templates), bearer tokens and their verification, the
IAM-style policy, Google's system parameters and the web console. Imports
``lib.core`` and ``lib.kinds``; nothing imports it but ``main.py``.
"""
