//! Integration tests: the same routers, handlers and scripts as the Lambdas, against the real
//! local stack (Redis, Postgres, LocalStack SQS, DynamoDB Local). `make test` starts it and sets
//! the environment; each test isolates itself (fresh sale ids, Postgres schemas, queues, tables),
//! so they run in parallel and re-run on a dirty machine.

mod helpers;

mod acl;

mod buy;
mod checkout;
mod cluster;
mod contract;
mod durable;
mod end_to_end;
mod entry;
mod fast_path;
mod faults;
mod local_server;
mod operator;
mod recovery;
mod redis_restarts;
mod relay;
mod reserve_script;
mod settle;
mod stripe;
mod tls;
mod truthful;
mod waiting_room;
