//! Request bodies: what Postgres would refuse is refused at the gateway, and every answer is
//! bounded however large the body's mistakes.
