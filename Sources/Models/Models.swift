// The Models module; see the README's architecture section.
