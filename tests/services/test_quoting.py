"""Which pool a quote prices and a purchase buys (bot.domain.quoting, pure)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.quoting import Choice, cheapest_in_stock, purchase_choice, quote_choice
from bot.services.api import Pool, Service, ServiceUnavailable, SoldOut

D = Decimal
TG = Service("sb_tg", "Telegram 2", D("0.45"), (Pool("2266", D("0.45"), 1820),
                                               Pool("3109", D("0.60"), 980)))
SIGNAL = Service("Signal", "Signal", D("0.60"))


def sold_out(service: Service, pid: str) -> Service:
    pools = tuple(Pool(p.provider_id, p.price, 0 if p.provider_id == pid else p.count)
                  for p in service.pools)
    return Service(service.code, service.name, service.price, pools)


def test_cheapest_resolves_to_the_cheapest_pool_with_numbers() -> None:
    assert quote_choice(TG, None) == Choice("2266", D("0.45"))
    assert quote_choice(sold_out(TG, "2266"), None) == Choice("3109", D("0.60"))
    tie = Service("sb_x", "X", D("1"), (Pool("b", D("1"), 5), Pool("a", D("1"), 5)))
    assert cheapest_in_stock(tie) == tie.pools[0]  # the first of equal prices
    with pytest.raises(SoldOut) as info:
        quote_choice(sold_out(sold_out(TG, "2266"), "3109"), None)
    assert info.value.service is not None and info.value.pool is None


def test_pinned_and_single_provider_quotes() -> None:
    assert quote_choice(TG, "3109") == Choice("3109", D("0.60"))
    assert quote_choice(SIGNAL, None) == Choice(None, D("0.60"))
    assert quote_choice(SIGNAL, "3109") == Choice(None, D("0.60"))  # ignored, as upstream
    with pytest.raises(ServiceUnavailable):
        quote_choice(TG, "9999")


def test_purchase_buys_the_quoted_pool_or_nothing() -> None:
    assert purchase_choice(TG, None, "2266") == Choice("2266", D("0.45"))
    cheaper = Service("sb_tg", "Telegram 2", D("0.40"), (Pool("3109", D("0.40"), 9),
                                                        Pool("2266", D("0.45"), 9)))
    assert purchase_choice(cheaper, None, "2266") == Choice("2266", D("0.45"))
    for fresh in (sold_out(TG, "2266"),
                  Service("sb_tg", "Telegram 2", D("0.60"), (Pool("3109", D("0.60"), 9),))):
        with pytest.raises(SoldOut) as info:
            purchase_choice(fresh, None, "2266")
        assert info.value.pool == "2266" and info.value.service is fresh
    assert purchase_choice(TG, "3109", "3109") == Choice("3109", D("0.60"))
    assert purchase_choice(TG, "3109", None) == Choice("3109", D("0.60"))
    assert purchase_choice(TG, None, None) == Choice("2266", D("0.45"))  # no quote: now
    assert purchase_choice(SIGNAL, None, None) == Choice(None, D("0.60"))
    with pytest.raises(ValueError):
        purchase_choice(TG, "3109", "2266")
