// sk_axil_regs: minimal AXI4-Lite slave: one write or read at a time, exposed as strobes
`default_nettype none
`timescale 1ns / 1ps

// A write completes when AW and W are both valid and wr_ready is high (the
// register owner can take it); reads return rd_data for the address on the
// cycle after AR is accepted. Responses are always OKAY. A new write (read) is
// accepted in the cycle its predecessor's response is taken, so a master that
// keeps BREADY (RREADY) high gets one transfer per cycle.
module sk_axil_regs #(
    parameter ADDR_WIDTH = 12      // byte address bits of the register window
) (
    input  wire                  clk,
    input  wire                  rst,

    input  wire [ADDR_WIDTH-1:0] s_axil_awaddr,
    input  wire [2:0]            s_axil_awprot,
    input  wire                  s_axil_awvalid,
    output wire                  s_axil_awready,
    input  wire [31:0]           s_axil_wdata,
    input  wire [3:0]            s_axil_wstrb,
    input  wire                  s_axil_wvalid,
    output wire                  s_axil_wready,
    output wire [1:0]            s_axil_bresp,
    output wire                  s_axil_bvalid,
    input  wire                  s_axil_bready,
    input  wire [ADDR_WIDTH-1:0] s_axil_araddr,
    input  wire [2:0]            s_axil_arprot,
    input  wire                  s_axil_arvalid,
    output wire                  s_axil_arready,
    output wire [31:0]           s_axil_rdata,
    output wire [1:0]            s_axil_rresp,
    output wire                  s_axil_rvalid,
    input  wire                  s_axil_rready,

    // register owner side
    output wire                  wr_en,      // one-cycle write strobe
    output wire [ADDR_WIDTH-1:0] wr_addr,
    output wire [31:0]           wr_data,
    input  wire                  wr_ready,   // the owner can take a write this cycle
    output wire                  rd_en,      // one-cycle read strobe (for read side effects)
    output wire [ADDR_WIDTH-1:0] rd_addr,
    input  wire [31:0]           rd_data     // combinational from rd_addr
);

reg bvalid_reg = 1'b0, rvalid_reg = 1'b0;
reg [31:0] rdata_reg = 0;

wire do_write = s_axil_awvalid && s_axil_wvalid && (!bvalid_reg || s_axil_bready) && wr_ready;
wire do_read = s_axil_arvalid && (!rvalid_reg || s_axil_rready);

assign s_axil_awready = do_write;
assign s_axil_wready = do_write;
assign s_axil_bresp = 2'b00;
assign s_axil_bvalid = bvalid_reg;
assign s_axil_arready = do_read;
assign s_axil_rdata = rdata_reg;
assign s_axil_rresp = 2'b00;
assign s_axil_rvalid = rvalid_reg;

assign wr_en = do_write;
assign wr_addr = s_axil_awaddr;
assign wr_data = s_axil_wdata;
assign rd_en = do_read;
assign rd_addr = s_axil_araddr;

always @(posedge clk) begin
    if (do_write) begin
        bvalid_reg <= 1'b1;
    end else if (s_axil_bready) begin
        bvalid_reg <= 1'b0;
    end
    if (do_read) begin
        rvalid_reg <= 1'b1;
        rdata_reg <= rd_data;
    end else if (s_axil_rready) begin
        rvalid_reg <= 1'b0;
    end
    if (rst) begin
        bvalid_reg <= 1'b0;
        rvalid_reg <= 1'b0;
    end
end

endmodule

`resetall
