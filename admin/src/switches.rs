//! `admin integration-switches`: set an existing integration's switches for clients written
//! against the real API.

use clap::Args;
use shared::store::integration_switches::{self, SwitchChange};
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Args)]
pub struct SwitchArgs {
    #[arg(long)]
    pub integration: Uuid,
    /// Answer 200 (true) or 202 (false) to an accepted call or text.
    #[arg(long)]
    pub respond_200: Option<bool>,
    /// Refuse a call or text of an unknown or inactive operator at once with the real API's
    /// 422 (true), or set it aside and replay it once the operator is bound (false).
    #[arg(long)]
    pub qolio_compatible: Option<bool>,
}

pub async fn run(args: SwitchArgs, pool: &PgPool) -> anyhow::Result<()> {
    let change = SwitchChange {
        success_status: args.respond_200.map(|yes| if yes { 200 } else { 202 }),
        qolio_compatible: args.qolio_compatible,
    };
    let now = integration_switches::set(pool, args.integration, change).await?;
    println!("success_status:   {}", now.success_status);
    println!("qolio_compatible: {}", now.qolio_compatible);
    eprintln!("(gateways apply it within auth.cache_ttl_secs)");
    Ok(())
}
