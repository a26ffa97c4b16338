//! Benchmark baselines for `bench/run`: the `bare-hyper` binary (the same hyper 1.x server
//! set-up as the order server with nothing else: no routing, no metrics, no simulation), and
//! the criterion micro-benchmarks in `benches/` (instrumentation cost per record, `/metrics`
//! render time by series count). Nothing here is part of the product.
