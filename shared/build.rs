// `sqlx::migrate!` embeds the migrations at compile time but does not watch the folder, so
// an added migration would be missed by an incremental build without this.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
