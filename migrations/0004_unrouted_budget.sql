-- 0004 (0005 in the lead's plan; numbered after main's 0003): bytes of unrouted mail (postmaster/abuse
-- mail, auto-replies, bounces: stored without any authentication) per client network per day, so that one network cannot fill the database. A
-- table rather than memory: several instances share one database, and the budget is theirs together.

create table unrouted_budget (
  network  text not null,              -- 192.0.2.0/24, 2001:db8:1::/48 (src/smtp/limits.ts networkKey)
  day      date not null default current_date,
  bytes    bigint not null default 0,
  primary key (network, day)
);
create index unrouted_budget_day on unrouted_budget (day);
