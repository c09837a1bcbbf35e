"""Data contracts on the entity store (placeholder until the pandera contracts land)."""


def check_store(store, where: str) -> None:
    return None
