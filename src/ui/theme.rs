//! Colours, chosen once per theme so panels never hard-code them.

use ratatui::style::{Color, Modifier, Style};

#[derive(Copy, Clone, Debug)]
pub struct Theme {
    pub text: Style,
    pub dim: Style,
    pub title: Style,
    pub border: Style,
    pub focused_border: Style,
    pub ok: Style,
    pub warn: Style,
    pub bad: Style,
    pub badge: Style,
    pub selected: Style,
    pub key: Style,
    pub cpu: Color,
    pub pending: Color,
    pub threshold_up: Color,
    pub threshold_down: Color,
}

impl Theme {
    pub fn get(light: bool) -> Theme {
        let fg = if light { Color::Black } else { Color::Gray };
        Theme {
            text: Style::new().fg(fg),
            dim: Style::new().fg(Color::DarkGray),
            title: Style::new()
                .fg(if light { Color::Blue } else { Color::Cyan })
                .add_modifier(Modifier::BOLD),
            border: Style::new().fg(Color::DarkGray),
            focused_border: Style::new().fg(if light { Color::Blue } else { Color::Cyan }),
            ok: Style::new().fg(Color::Green),
            warn: Style::new().fg(if light { Color::Magenta } else { Color::Yellow }),
            bad: Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            badge: Style::new()
                .fg(Color::Black)
                .bg(if light { Color::Blue } else { Color::Cyan })
                .add_modifier(Modifier::BOLD),
            selected: Style::new().add_modifier(Modifier::REVERSED),
            key: Style::new()
                .fg(if light { Color::Blue } else { Color::Cyan })
                .add_modifier(Modifier::BOLD),
            cpu: if light { Color::Blue } else { Color::Cyan },
            pending: Color::Magenta,
            threshold_up: Color::Red,
            threshold_down: Color::Green,
        }
    }
}
