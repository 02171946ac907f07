"""When tasks fire, and the loop that fires them:

- ``cron``: fire times of a cron string on a time zone's wall clock, or of an interval (pure);
- ``backoff``: the delay curves before a retry (pure);
- ``rules``: what a schedule may hold, the one check of cron strings, intervals and time zones;
- ``loop``: the scheduler process's loop (ticks, jitter gate, reaping, held runs, retention).
"""
