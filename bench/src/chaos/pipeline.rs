//! The pipeline under chaos: gateways and one worker as child processes, each on ports of
//! its own, started again after a fault the way an orchestrator restarts a pod. Every
//! incarnation logs to a file of its own (`gateway-0.1.log`, `worker.2.log`, ...).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::fixture::Fixture;
use crate::phases::{free_port, wait_ready};
use crate::processes::Service;

pub struct Pipeline {
    env: Vec<(String, String)>,
    logs: PathBuf,
    gateways: Vec<Gateway>,
    worker: Option<Service>,
    worker_starts: usize,
}

struct Gateway {
    service: Option<Service>,
    port: u16,
    starts: usize,
}

impl Pipeline {
    /// `gateways` gateways and one worker, ready when this returns.
    pub async fn start(fixture: &Fixture, gateways: usize, logs: PathBuf) -> anyhow::Result<Self> {
        let mut pipeline = Self {
            env: fixture.child_env(0, free_port()?),
            logs,
            gateways: Vec::with_capacity(gateways),
            worker: None,
            worker_starts: 0,
        };
        for _ in 0..gateways {
            pipeline.gateways.push(Gateway {
                service: None,
                port: free_port()?,
                starts: 0,
            });
        }
        for i in 0..gateways {
            pipeline.start_gateway(i).await?;
        }
        pipeline.start_worker()?;
        Ok(pipeline)
    }

    pub fn gateway_addrs(&self) -> Vec<SocketAddr> {
        self.gateways
            .iter()
            .map(|g| SocketAddr::from(([127, 0, 0, 1], g.port)))
            .collect()
    }

    /// Fails when a process that should be running has died.
    pub fn check_alive(&self) -> anyhow::Result<()> {
        let gateways = self.gateways.iter().filter_map(|g| g.service.as_ref());
        for service in gateways.chain(self.worker.as_ref()) {
            service.check_alive()?;
        }
        Ok(())
    }

    /// SIGKILLs the worker and starts another at once; returns when the new one is started.
    pub async fn kill_worker(&mut self) -> anyhow::Result<()> {
        if let Some(worker) = self.worker.take() {
            worker.kill().await?;
        }
        self.start_worker()
    }

    /// SIGTERMs gateway `i`, waits for it to finish its requests and exit, then starts it
    /// again; returns how long it took to exit.
    pub async fn terminate_gateway(&mut self, i: usize) -> anyhow::Result<Duration> {
        let stopping = Instant::now();
        if let Some(gateway) = self.gateways[i].service.take() {
            gateway.stop().await?;
        }
        let exited_in = stopping.elapsed();
        self.start_gateway(i).await?;
        Ok(exited_in)
    }

    /// Stops every process with SIGTERM, as at the end of a deployment.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for gateway in &mut self.gateways {
            if let Some(service) = gateway.service.take() {
                service.stop().await?;
            }
        }
        if let Some(worker) = self.worker.take() {
            worker.stop().await?;
        }
        Ok(())
    }

    async fn start_gateway(&mut self, i: usize) -> anyhow::Result<()> {
        let gateway = &mut self.gateways[i];
        gateway.starts += 1;
        let mut env = self.env.clone();
        env.push((
            "APP_HTTP__LISTEN".to_owned(),
            format!("127.0.0.1:{}", gateway.port),
        ));
        let log = self
            .logs
            .join(format!("gateway-{i}.{}.log", gateway.starts));
        let service = Service::start("gateway", &env, &log)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], gateway.port));
        wait_ready(&service, addr)
            .await
            .with_context(|| format!("gateway {i} ({})", log.display()))?;
        gateway.service = Some(service);
        Ok(())
    }

    fn start_worker(&mut self) -> anyhow::Result<()> {
        self.worker_starts += 1;
        let log = self.logs.join(format!("worker.{}.log", self.worker_starts));
        self.worker = Some(Service::start("worker", &self.env, &log)?);
        Ok(())
    }
}
