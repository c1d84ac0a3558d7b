// The Forgetting module; see the README's architecture section.
