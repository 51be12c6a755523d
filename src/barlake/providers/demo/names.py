"""What a demo symbol's name says before any hashing: for well-known tickers, when they really
listed (whether a name is a crypto pair is ``domain.symbols.is_crypto_pair``).

Other names draw a listing from their hash (one in ten lists in 2024-2025), which would make
TSLA "list" on 2024-11-18; the tickers below keep their real first trading day instead (before
1990, where the calendars start, they simply always traded) and are never halted at random.
"""

from __future__ import annotations

from datetime import date

#: First trading day of well-known tickers, as the vendors spell them (Alpaca and Polygon
#: ``BRK.B``, Yahoo ``BRK-B`` and ``BTC-USD``, Binance ``BTCUSDT``).
LISTED: dict[str, date] = {
    "AAPL": date(1980, 12, 12),
    "MSFT": date(1986, 3, 13),
    "AMZN": date(1997, 5, 15),
    "GOOGL": date(2004, 8, 19),
    "GOOG": date(2014, 3, 27),
    "META": date(2012, 5, 18),
    "NVDA": date(1999, 1, 22),
    "TSLA": date(2010, 6, 29),
    "NFLX": date(2002, 5, 23),
    "AMD": date(1979, 1, 2),
    "INTC": date(1971, 10, 13),
    "CSCO": date(1990, 2, 16),
    "ORCL": date(1986, 3, 12),
    "IBM": date(1962, 1, 2),
    "BRK.B": date(1996, 5, 9),
    "BRK-B": date(1996, 5, 9),
    "BRK/B": date(1996, 5, 9),
    "JPM": date(1980, 3, 17),
    "V": date(2008, 3, 19),
    "MA": date(2006, 5, 25),
    "UNH": date(1984, 10, 17),
    "XOM": date(1962, 1, 2),
    "JNJ": date(1962, 1, 2),
    "WMT": date(1972, 8, 25),
    "PG": date(1962, 1, 2),
    "KO": date(1962, 1, 2),
    "PEP": date(1972, 6, 1),
    "HD": date(1981, 9, 22),
    "CVX": date(1962, 1, 2),
    "DIS": date(1962, 1, 2),
    "BAC": date(1973, 2, 21),
    "SPY": date(1993, 1, 29),
    "QQQ": date(1999, 3, 10),
    "IWM": date(2000, 5, 22),
    "DIA": date(1998, 1, 20),
    "BTC-USD": date(2014, 9, 17),
    "ETH-USD": date(2017, 11, 9),
    "BTCUSDT": date(2017, 8, 17),
    "ETHUSDT": date(2017, 8, 17),
    "BNBUSDT": date(2017, 11, 6),
    "BNBBTC": date(2017, 7, 14),
    "ETHBTC": date(2017, 7, 14),
}
