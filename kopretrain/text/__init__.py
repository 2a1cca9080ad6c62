"""Korean text: normalizer rules, kiwipiepy, and the text preparation recorded with every model."""
