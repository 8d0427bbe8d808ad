//! The window: the knobs on the left, [`PerdixPanel`] in the middle, the `--screenshot` and
//! `--exit-after` handling, and the panel's own cost per frame.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use perdix_transport::dashboard::egui;
use perdix_transport::dashboard::PerdixPanel;
use perdix_transport::testing::stress::{self, VerifyReport};

use crate::transport::{Transport, TICK};

/// Panel cost per frame: the last values, for the frame-time counter.
#[derive(Debug, Default)]
pub struct FrameCost {
    recent: VecDeque<f64>,
    all: Vec<f64>,
}

impl FrameCost {
    fn push(&mut self, ms: f64) {
        if self.recent.len() == 120 {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        self.all.push(ms);
    }

    fn mean_recent(&self) -> f64 {
        if self.recent.is_empty() {
            0.0
        } else {
            self.recent.iter().sum::<f64>() / self.recent.len() as f64
        }
    }

    pub fn summary(&self) -> String {
        let mut sorted = self.all.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return "panel cost: no frames".into();
        }
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let q = |p: f64| sorted[((n - 1) as f64 * p) as usize];
        format!(
            "panel cost over {n} frames: mean {mean:.3} ms, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            q(0.5),
            q(0.99),
            sorted[n - 1]
        )
    }
}

const CAPACITIES: [usize; 8] = [64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576];

pub struct DashboardApp {
    pub transport: Transport,
    pub rate: f64,
    pub unlimited: bool,
    pub size: usize,
    pub capacity: usize,
    pub drop_newest: bool,
    pub paused: bool,
    pub error: Option<String>,
    pub cost: FrameCost,
    pub screenshot: Option<(PathBuf, f64)>,
    pub screenshot_sent: bool,
    pub exit_after: f64,
    pub started: Instant,
}

impl DashboardApp {
    fn knobs(&mut self, ui: &mut egui::Ui, verify: &VerifyReport) {
        let knobs = Arc::clone(&self.transport.knobs);
        ui.heading("producer");
        ui.add_enabled(
            !self.unlimited,
            egui::Slider::new(&mut self.rate, 1_000.0..=50_000_000.0)
                .logarithmic(true)
                .text("msg/s"),
        );
        ui.checkbox(&mut self.unlimited, "unlimited rate");
        let rate = if self.unlimited { 0 } else { self.rate as u64 };
        knobs.rate.store(rate, Ordering::Relaxed);

        ui.add(
            egui::Slider::new(
                &mut self.size,
                stress::MIN_SIZE..=perdix_transport::layout::SLOT_PAYLOAD,
            )
            .step_by(8.0)
            .text("bytes/msg"),
        );
        knobs.size.store(self.size, Ordering::Relaxed);

        ui.separator();
        ui.heading("ring");
        let before = self.capacity;
        egui::ComboBox::from_label("slots")
            .selected_text(self.capacity.to_string())
            .show_ui(ui, |ui| {
                for cap in CAPACITIES {
                    ui.selectable_value(&mut self.capacity, cap, cap.to_string());
                }
            });
        if self.capacity != before {
            if let Err(err) = self.transport.set_capacity(self.capacity) {
                self.error = Some(err.to_string());
            }
        }
        ui.horizontal(|ui| {
            ui.label("policy");
            ui.radio_value(&mut self.drop_newest, false, "block");
            ui.radio_value(&mut self.drop_newest, true, "drop-newest");
        });
        knobs.drop_newest.store(self.drop_newest, Ordering::Relaxed);

        ui.separator();
        ui.horizontal(|ui| {
            let label = if self.paused {
                "▶ resume"
            } else {
                "⏸ pause"
            };
            if ui.button(label).clicked() {
                self.paused = !self.paused;
                knobs.paused.store(self.paused, Ordering::Relaxed);
            }
            if ui.button("⟲ reset stats").clicked() {
                knobs.reset.store(true, Ordering::Relaxed);
            }
        });

        ui.separator();
        ui.heading("verification");
        let clean = verify.is_clean();
        ui.colored_label(
            if clean {
                egui::Color32::from_rgb(80, 200, 120)
            } else {
                egui::Color32::from_rgb(235, 80, 70)
            },
            if clean {
                "every message intact"
            } else {
                "ERRORS"
            },
        );
        egui::Grid::new("verify").num_columns(2).show(ui, |ui| {
            for (name, value) in [
                ("checked", verify.messages),
                ("lost", verify.lost),
                ("duplicates", verify.duplicates),
                ("reordered", verify.reordered),
                ("corrupt", verify.corrupt),
            ] {
                ui.label(name);
                ui.label(value.to_string());
                ui.end_row();
            }
        });
        if let Some(err) = &self.error {
            ui.colored_label(egui::Color32::from_rgb(235, 80, 70), err);
        }

        ui.separator();
        ui.label(format!("panel: {:.3} ms/frame", self.cost.mean_recent()));
    }

    fn screenshot(&mut self, ctx: &egui::Context) {
        let Some((path, after)) = &self.screenshot else {
            return;
        };
        let image = ctx.input(|i| {
            i.events.iter().find_map(|e| match e {
                egui::Event::Screenshot { image, .. } => Some(Arc::clone(image)),
                _ => None,
            })
        });
        if let Some(image) = image {
            match save_png(path, &image) {
                Ok(()) => eprintln!("screenshot saved to {}", path.display()),
                Err(err) => eprintln!("screenshot to {} failed: {err}", path.display()),
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        } else if !self.screenshot_sent && self.started.elapsed().as_secs_f64() >= *after {
            self.screenshot_sent = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::UserData::default()));
        }
    }
}

fn save_png(path: &std::path::Path, image: &egui::ColorImage) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let [w, h] = image.size;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    writer
        .write_image_data(&bytes)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}

impl eframe::App for DashboardApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let (snapshot, verify) = self.transport.snapshot();
        egui::Panel::left("knobs")
            .resizable(false)
            .default_size(260.0)
            .show(ui, |ui| self.knobs(ui, &verify));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                let start = Instant::now();
                ui.add(PerdixPanel::new(&snapshot).plot_height(130.0));
                self.cost.push(start.elapsed().as_secs_f64() * 1e3);
            });
        });
        self.screenshot(&ctx);
        if self.exit_after > 0.0 && self.started.elapsed().as_secs_f64() >= self.exit_after {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        ctx.request_repaint_after(TICK);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        eprintln!("{}", self.cost.summary());
        self.transport.stop();
        let (_, verify) = self.transport.snapshot();
        eprintln!("verification: {verify:?}");
    }
}
