"""One notice per user per interval, for floods and refusals alike."""

from bot.middlewares.notices import MAX_TRACKED, NoticeLimiter


def test_one_notice_per_user_per_interval() -> None:
    now = [0.0]
    notices = NoticeLimiter(60, clock=lambda: now[0])
    assert notices.due(1) and notices.due(2)
    assert not notices.due(1)
    now[0] = 59.9
    assert not notices.due(1)
    now[0] = 60.0
    assert notices.due(1) and not notices.due(1)


def test_memory_is_bounded_and_forgets_the_oldest_first() -> None:
    notices = NoticeLimiter(3600, clock=lambda: 0.0)
    for user in range(MAX_TRACKED + 5):
        assert notices.due(user)
    assert notices.due(0)  # forgotten: may be told once more
    assert not notices.due(MAX_TRACKED + 4)  # recent: still remembered
