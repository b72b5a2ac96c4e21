"""The kernel every app stands on: errors, audit, state transitions, API and admin helpers, money, logging."""
