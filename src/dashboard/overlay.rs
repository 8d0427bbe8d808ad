//! [`PerdixOverlayPlugin`]: the [`PerdixPanel`] inside a windowed Bevy app, through bevy_egui.

use bevy_app::{App, Plugin, Update};
use bevy_ecs::prelude::*;
use bevy_egui::{EguiContexts, EguiPlugin, EguiPrimaryContextPass};
use bevy_input::keyboard::KeyCode;
use bevy_input::ButtonInput;

use super::PerdixPanel;
use crate::bevy::PerdixRings;
use crate::telemetry::TelemetrySnapshot;

/// Draws the [`PerdixPanel`] of the app's [`PerdixRings`] in an egui window over a Bevy window,
/// shown and hidden with a key (F1 by default).
///
/// Add it next to [`PerdixPlugin`](crate::bevy::PerdixPlugin) in an app that has a window, a
/// camera and the render stack (`DefaultPlugins`, or a windowing subset of it); it adds
/// bevy_egui's `EguiPlugin` when the app has none. Without a `PerdixRings` the panel shows an
/// empty snapshot.
///
/// # Examples
///
/// ```no_run
/// use bevy_app::App;
/// use bevy_input::keyboard::KeyCode;
/// use perdix_transport::bevy::PerdixPlugin;
/// use perdix_transport::dashboard::PerdixOverlayPlugin;
///
/// let mut app = App::new();
/// // ... plus a window, a camera and the render plugins ...
/// app.add_plugins((
///     PerdixPlugin::default(),
///     PerdixOverlayPlugin::default().toggle_key(KeyCode::Tab),
/// ));
/// ```
#[derive(Debug, Clone)]
pub struct PerdixOverlayPlugin {
    /// The key that shows and hides the panel.
    pub toggle_key: KeyCode,
    /// Whether the panel is shown at start.
    pub visible: bool,
    /// Seconds of history the plots show.
    pub window_secs: f64,
}

impl Default for PerdixOverlayPlugin {
    fn default() -> Self {
        Self {
            toggle_key: KeyCode::F1,
            visible: true,
            window_secs: 60.0,
        }
    }
}

impl PerdixOverlayPlugin {
    /// The default overlay: shown at start, toggled with F1, 60 s of history.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the key that shows and hides the panel.
    #[must_use]
    pub fn toggle_key(mut self, key: KeyCode) -> Self {
        self.toggle_key = key;
        self
    }

    /// Sets whether the panel is shown at start.
    #[must_use]
    pub fn visible(mut self, visible: bool) -> Self {
        self.visible = visible;
        self
    }
}

/// The overlay's runtime state: change `visible` from any system to show or hide the panel.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct PerdixOverlay {
    /// Whether the panel is drawn.
    pub visible: bool,
    /// The key that flips `visible`.
    pub toggle_key: KeyCode,
    /// Seconds of history the plots show.
    pub window_secs: f64,
}

impl Plugin for PerdixOverlayPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<EguiPlugin>() {
            app.add_plugins(EguiPlugin::default());
        }
        app.insert_resource(PerdixOverlay {
            visible: self.visible,
            toggle_key: self.toggle_key,
            window_secs: self.window_secs,
        })
        .add_systems(Update, toggle_overlay)
        .add_systems(EguiPrimaryContextPass, draw_overlay);
    }
}

/// Flips [`PerdixOverlay::visible`] when its key is pressed.
fn toggle_overlay(keys: Option<Res<ButtonInput<KeyCode>>>, mut overlay: ResMut<PerdixOverlay>) {
    if keys.is_some_and(|keys| keys.just_pressed(overlay.toggle_key)) {
        overlay.visible = !overlay.visible;
    }
}

/// Draws the panel in an egui window on the primary egui context.
fn draw_overlay(
    mut contexts: EguiContexts,
    rings: Option<Res<PerdixRings>>,
    overlay: Res<PerdixOverlay>,
) -> Result {
    if !overlay.visible {
        return Ok(());
    }
    let ctx = contexts.ctx_mut()?;
    let snapshot = rings.map_or_else(TelemetrySnapshot::default, |rings| rings.snapshot());
    egui::Window::new("perdix")
        .default_width(760.0)
        .default_pos([16.0, 16.0])
        .show(ctx, |ui| {
            ui.add(PerdixPanel::new(&snapshot).window_secs(overlay.window_secs));
        });
    Ok(())
}
