# R1 joint-read: the register is one joint register. Staff of any controller,
# working in the EU/EEA, read the public, identification, home, additional
# and processing data and the service records of every controller's records,
# and the change history of what they may read.

grants(p: Principal, _r: Record, class: String, "R1-joint-read") if
    is_controller(p) and staff(p) and p.in_eu_eea and
    class in ["company.public", "contact.identification", "contact.home", "contact.additional",
              "contact.processing", "service.record", "history"];
