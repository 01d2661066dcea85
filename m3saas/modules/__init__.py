"""Discovery, versions, URL mounting and checks of the business modules under `modules/`."""
