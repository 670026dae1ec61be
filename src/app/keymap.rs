//! The keymap: one table that binds keys, generates the footer hints and
//! the help overlay. Read-only mode builds it without the dangerous
//! actions, so those keys are neither bound nor shown (as in k9s).

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::{BTreeMap, HashMap};

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Help,
    Quit,
    FocusNext,
    FocusPrev,
    Focus(u8),
    Down,
    Up,
    Filter,
    Sort,
    SortReverse,
    WindowShorter,
    WindowLonger,
    Freeze,
    Refresh,
    Reconcile,
    /// The selected worker's detail view.
    Describe,
    // Dangerous: change the cluster or the engine's behaviour.
    ApplySuggestion,
    AddWorker,
    Cordon,
    Uncordon,
    RemoveNode,
    Pause,
    ClusterPause,
    ToggleAuto,
}

impl Action {
    pub fn is_dangerous(self) -> bool {
        matches!(
            self,
            Action::ApplySuggestion
                | Action::AddWorker
                | Action::Cordon
                | Action::Uncordon
                | Action::RemoveNode
                | Action::Pause
                | Action::ClusterPause
                | Action::ToggleAuto
        )
    }

    /// Name used in `[ui.keys]` overrides.
    pub fn config_name(self) -> &'static str {
        match self {
            Action::Help => "help",
            Action::Quit => "quit",
            Action::FocusNext => "focus_next",
            Action::FocusPrev => "focus_prev",
            Action::Focus(_) => "focus",
            Action::Down => "down",
            Action::Up => "up",
            Action::Filter => "filter",
            Action::Sort => "sort",
            Action::SortReverse => "sort_reverse",
            Action::WindowShorter => "window_shorter",
            Action::WindowLonger => "window_longer",
            Action::Freeze => "freeze",
            Action::Refresh => "refresh",
            Action::Reconcile => "reconciliation",
            Action::Describe => "describe",
            Action::ApplySuggestion => "apply_suggestion",
            Action::AddWorker => "add_worker",
            Action::Cordon => "cordon",
            Action::Uncordon => "uncordon",
            Action::RemoveNode => "remove_node",
            Action::Pause => "pause",
            Action::ClusterPause => "cluster_pause",
            Action::ToggleAuto => "toggle_auto",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

impl Key {
    pub fn plain(code: KeyCode) -> Self {
        Key { code, ctrl: false }
    }

    pub fn ctrl(c: char) -> Self {
        Key {
            code: KeyCode::Char(c),
            ctrl: true,
        }
    }

    pub fn from_event(event: &KeyEvent) -> Self {
        // Shift is part of the character for letters ('S'); ignore it otherwise.
        Key {
            code: event.code,
            ctrl: event.modifiers.contains(KeyModifiers::CONTROL),
        }
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCode::Char(' ') => "Space".to_string(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("Ctrl-{base}")
        } else {
            base
        }
    }

    /// `"x"`, `"ctrl-r"`, `"enter"`, `"tab"`: the `[ui.keys]` syntax.
    pub fn parse(text: &str) -> Option<Key> {
        let lower = text.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("ctrl-") {
            let mut chars = rest.chars();
            return match (chars.next(), chars.next()) {
                (Some(c), None) => Some(Key::ctrl(c)),
                _ => None,
            };
        }
        let code = match lower.as_str() {
            "enter" => KeyCode::Enter,
            "esc" => KeyCode::Esc,
            "tab" => KeyCode::Tab,
            "space" => KeyCode::Char(' '),
            _ => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => KeyCode::Char(c),
                    _ => return None,
                }
            }
        };
        Some(Key::plain(code))
    }
}

#[derive(Clone, Debug)]
pub struct Binding {
    pub keys: Vec<Key>,
    pub action: Action,
    pub help: &'static str,
    /// Shown in the footer (the rest only in `?`).
    pub in_footer: bool,
}

#[derive(Clone, Debug)]
pub struct Keymap {
    pub bindings: Vec<Binding>,
    lookup: HashMap<Key, Action>,
}

fn b(keys: Vec<Key>, action: Action, help: &'static str, in_footer: bool) -> Binding {
    Binding {
        keys,
        action,
        help,
        in_footer,
    }
}

impl Keymap {
    /// The default keys (the README's console section, k9s habits), minus the dangerous ones
    /// when `read_only`, with `[ui.keys]` overrides applied.
    pub fn new(read_only: bool, overrides: &BTreeMap<String, String>) -> Result<Keymap, String> {
        use KeyCode::*;
        let p = Key::plain;
        let c = |ch| Key::plain(Char(ch));
        let mut bindings = vec![
            b(
                vec![p(Enter)],
                Action::ApplySuggestion,
                "act on the engine's suggestion (asks to confirm)",
                true,
            ),
            b(
                vec![c('+')],
                Action::AddWorker,
                "one more worker (asks to confirm)",
                true,
            ),
            b(
                vec![c('c')],
                Action::Cordon,
                "cordon the selected node (asks to confirm)",
                true,
            ),
            b(
                vec![c('u')],
                Action::Uncordon,
                "uncordon the selected node (asks to confirm)",
                true,
            ),
            b(
                vec![c('r')],
                Action::RemoveNode,
                "drain and remove the selected node (asks to confirm)",
                true,
            ),
            b(
                vec![c('p')],
                Action::Pause,
                "pause / resume this engine",
                true,
            ),
            b(
                vec![c('P')],
                Action::ClusterPause,
                "cluster-wide pause for 30 min / resume (asks to confirm)",
                false,
            ),
            b(
                vec![c('a')],
                Action::ToggleAuto,
                "switch supervised ↔ auto (asks to confirm)",
                false,
            ),
            b(
                vec![c('/')],
                Action::Filter,
                "filter workers (Enter keeps, Esc clears)",
                true,
            ),
            b(
                vec![c('s')],
                Action::Sort,
                "sort workers by the next column",
                false,
            ),
            b(
                vec![c('S')],
                Action::SortReverse,
                "reverse the sort order",
                false,
            ),
            b(
                vec![c('['), c(']')],
                Action::WindowShorter,
                "chart window 15m / 1h / 6h",
                true,
            ),
            b(
                vec![c('f')],
                Action::Freeze,
                "freeze / unfreeze the display",
                false,
            ),
            b(vec![Key::ctrl('r')], Action::Refresh, "refresh now", false),
            b(
                vec![c('R')],
                Action::Reconcile,
                "reconciliation: what EC2, nodes and operations disagree on",
                false,
            ),
            b(
                vec![c('d')],
                Action::Describe,
                "describe the selected worker: boot, pods and their drain",
                true,
            ),
            b(
                vec![p(Tab)],
                Action::FocusNext,
                "focus the next panel",
                false,
            ),
            b(
                vec![p(BackTab)],
                Action::FocusPrev,
                "focus the previous panel",
                false,
            ),
            b(
                vec![c('1'), c('2'), c('3'), c('4'), c('5')],
                Action::Focus(0),
                "focus charts / workers / operation / suggestion / log",
                false,
            ),
            b(
                vec![c('j'), p(Down)],
                Action::Down,
                "down (select, scroll)",
                false,
            ),
            b(
                vec![c('k'), p(Up)],
                Action::Up,
                "up (select, scroll)",
                false,
            ),
            b(vec![c('?')], Action::Help, "help", true),
            b(vec![c('q'), Key::ctrl('c')], Action::Quit, "quit", true),
        ];
        if read_only {
            bindings.retain(|binding| !binding.action.is_dangerous());
            // Enter applies nothing in read-only mode: it opens the
            // selected worker, as in k9s.
            if let Some(describe) = bindings.iter_mut().find(|b| b.action == Action::Describe) {
                describe.keys.push(p(Enter));
            }
        }
        for (name, key_text) in overrides {
            let key = Key::parse(key_text)
                .ok_or_else(|| format!("ui.keys.{name}: \"{key_text}\" is not a key (use e.g. \"x\", \"ctrl-r\", \"enter\")"))?;
            let Some(binding) = bindings.iter_mut().find(|b| b.action.config_name() == name) else {
                if read_only {
                    continue; // a dangerous action's override is moot in read-only mode
                }
                return Err(format!("ui.keys.{name}: no such action"));
            };
            binding.keys = vec![key];
        }
        let mut lookup = HashMap::new();
        for binding in &bindings {
            for (i, key) in binding.keys.iter().enumerate() {
                let action = match binding.action {
                    Action::Focus(_) => Action::Focus(i as u8),
                    Action::WindowShorter if i == 1 => Action::WindowLonger,
                    other => other,
                };
                if let Some(previous) = lookup.insert(key.clone(), action)
                    && previous != action
                {
                    return Err(format!(
                        "key {} is bound to both {} and {}",
                        key.label(),
                        previous.config_name(),
                        action.config_name()
                    ));
                }
            }
        }
        Ok(Keymap { bindings, lookup })
    }

    pub fn action(&self, key: &Key) -> Option<Action> {
        self.lookup.get(key).copied()
    }

    pub fn keys_label(binding: &Binding) -> String {
        binding
            .keys
            .iter()
            .map(Key::label)
            .collect::<Vec<_>>()
            .join("/")
    }

    /// `Enter apply  + worker  …`: the footer, from the same table.
    pub fn footer(&self) -> Vec<(String, &'static str)> {
        self.bindings
            .iter()
            .filter(|b| b.in_footer)
            .map(|b| (Self::keys_label(b), short_help(b.action)))
            .collect()
    }
}

fn short_help(action: Action) -> &'static str {
    match action {
        Action::ApplySuggestion => "apply",
        Action::AddWorker => "worker",
        Action::Cordon => "cordon",
        Action::Uncordon => "uncordon",
        Action::RemoveNode => "remove",
        Action::Pause => "pause",
        Action::Filter => "filter",
        Action::WindowShorter | Action::WindowLonger => "window",
        Action::Help => "help",
        Action::Quit => "quit",
        Action::Reconcile => "reconcile",
        Action::Describe => "describe",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_binds_no_dangerous_key() {
        let map = Keymap::new(true, &BTreeMap::new()).unwrap();
        for key in ["+", "c", "u", "r", "p", "a"] {
            assert_eq!(
                map.action(&Key::parse(key).unwrap()),
                None,
                "{key} is bound in read-only"
            );
        }
        // Enter applies nothing here: it describes the selected worker.
        assert_eq!(
            map.action(&Key::plain(KeyCode::Enter)),
            Some(Action::Describe)
        );
        assert!(map.bindings.iter().all(|b| !b.action.is_dangerous()));
        assert_eq!(map.action(&Key::parse("q").unwrap()), Some(Action::Quit));
    }

    #[test]
    fn overrides_rebind_and_conflicts_are_refused() {
        let overrides = BTreeMap::from([("add_worker".to_string(), "w".to_string())]);
        let map = Keymap::new(false, &overrides).unwrap();
        assert_eq!(
            map.action(&Key::parse("w").unwrap()),
            Some(Action::AddWorker)
        );
        assert_eq!(map.action(&Key::parse("+").unwrap()), None);
        let clash = BTreeMap::from([("add_worker".to_string(), "q".to_string())]);
        assert!(
            Keymap::new(false, &clash)
                .unwrap_err()
                .contains("bound to both")
        );
        let unknown = BTreeMap::from([("launch_rockets".to_string(), "x".to_string())]);
        assert!(Keymap::new(false, &unknown).is_err());
        assert_eq!(Key::parse("ctrl-r"), Some(Key::ctrl('r')));
        assert_eq!(Key::parse("ab"), None);
    }

    #[test]
    fn window_and_focus_keys_map_to_their_variants() {
        let map = Keymap::new(false, &BTreeMap::new()).unwrap();
        assert_eq!(
            map.action(&Key::parse("]").unwrap()),
            Some(Action::WindowLonger)
        );
        assert_eq!(
            map.action(&Key::parse("[").unwrap()),
            Some(Action::WindowShorter)
        );
        assert_eq!(
            map.action(&Key::parse("3").unwrap()),
            Some(Action::Focus(2))
        );
    }
}
