"""`python -m tunetorch.race [landscape=bumpy]`: see tunetorch.race."""

from tunetorch.race.runner import main

main()
