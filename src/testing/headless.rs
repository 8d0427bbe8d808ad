//! [`HeadlessFrame`]: one egui frame laid out with no window and no renderer, the way the
//! dashboard tests and the panel bench drive [`PerdixPanel`](crate::dashboard::PerdixPanel).

use egui::epaint::{ClippedPrimitive, ClippedShape, Primitive};
use egui::{Context, FullOutput, Pos2, RawInput, Rect, Ui, Vec2};

/// What one headless frame drew, before tessellation.
///
/// # Examples
///
/// ```
/// use perdix_transport::dashboard::{egui, PerdixPanel};
/// use perdix_transport::telemetry::TelemetrySnapshot;
/// use perdix_transport::testing::HeadlessFrame;
///
/// let (ctx, snapshot) = (egui::Context::default(), TelemetrySnapshot::default());
/// let frame = HeadlessFrame::run(&ctx, [1280.0, 900.0], 0, |ui| {
///     ui.add(PerdixPanel::new(&snapshot));
/// });
/// assert!(!frame.shapes.is_empty());
/// assert!(frame.triangles(&ctx) > 0);
/// ```
#[derive(Debug)]
pub struct HeadlessFrame {
    /// The shapes the frame produced.
    pub shapes: Vec<ClippedShape>,
    /// The frame's pixels per point (tessellation needs it).
    pub pixels_per_point: f32,
}

impl HeadlessFrame {
    /// Runs frame number `frame` of `ctx` (at 60 frames a second) on a `width` × `height`
    /// screen, `add` drawing into its root `Ui`. The font atlas upload it asks for is dropped:
    /// there is no renderer to take it.
    pub fn run(
        ctx: &Context,
        [width, height]: [f32; 2],
        frame: u64,
        add: impl FnMut(&mut Ui),
    ) -> Self {
        let input = RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, Vec2::new(width, height))),
            time: Some(frame as f64 / 60.0),
            ..RawInput::default()
        };
        let FullOutput {
            shapes,
            pixels_per_point,
            mut textures_delta,
            ..
        } = ctx.run_ui(input, add);
        textures_delta.clear();
        Self {
            shapes,
            pixels_per_point,
        }
    }

    /// The shapes as meshes, what a renderer uploads.
    #[must_use]
    pub fn tessellate(self, ctx: &Context) -> Vec<ClippedPrimitive> {
        ctx.tessellate(self.shapes, self.pixels_per_point)
    }

    /// Triangles in the tessellated frame (paint callbacks count none).
    #[must_use]
    pub fn triangles(self, ctx: &Context) -> usize {
        self.tessellate(ctx)
            .iter()
            .map(|m| match &m.primitive {
                Primitive::Mesh(mesh) => mesh.indices.len() / 3,
                Primitive::Callback(_) => 0,
            })
            .sum()
    }
}
