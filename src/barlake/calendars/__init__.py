"""Exchange calendars: the Calendar value and its exchange_calendars source with a disk cache."""
