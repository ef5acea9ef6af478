"""The GPU side of the bot: the generation loop, live status messages and video delivery."""

from bot.worker.delivery import Delivery
from bot.worker.loop import GenerationLoop
from bot.worker.status import StatusHub

__all__ = ["Delivery", "GenerationLoop", "StatusHub"]
