"""Everything that draws on the terminal: the Rich consoles, progress bars and tables
(:mod:`lamina.ui.console`) and the chat UI behind ``lamina chat`` (:mod:`lamina.ui.tui`).

Only this package and :mod:`lamina.cli` import Rich; the libraries below report
progress through callbacks.
"""
