"""The async shell of a live run: pacing, the run lock, the safety latch and the orchestration.

Everything that awaits lives here or in ``brokers``; the decisions it carries out come from
the pure modules beside it (``rebalancer.order_fsm``, the diff, the risk check).
"""
