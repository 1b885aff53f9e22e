"""The hybrid backend: selfprompt-sam and the pixel classifier, chosen per structure and combined with Fill between
slices on the painted image. See :mod:`.backend`."""
